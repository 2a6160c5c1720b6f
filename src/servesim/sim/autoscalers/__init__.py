"""Autoscaling policies, one module each (`sim/autoscale.py` runs them)."""
