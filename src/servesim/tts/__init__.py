"""Test-time scaling: strategies as programs of calls priced by the simulation (`strategies.py`), a stated
accuracy model (`accuracy.py`), and the planner that joins the two (`planner.py`)."""
