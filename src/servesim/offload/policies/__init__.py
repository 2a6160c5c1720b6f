"""Offload policies, one module each, registered by name (`servesim policies`)."""
