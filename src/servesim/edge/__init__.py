"""Edge devices: what a run costs a battery (`battery.py`) and edge-cloud cascades (`cascade.py`)."""
