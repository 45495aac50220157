"""Diagrams of a compiled spec: its stages (stages.py), where each is drawn (layout.py), and the drawing itself
with matplotlib (draw.py, imported only when a diagram is made)."""
