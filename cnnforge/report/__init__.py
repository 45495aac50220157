"""`cnnforge report`: one self-contained HTML page of a training run. What the run folder holds (run.py), what its
checkpoint gives on the validation split (evaluation.py), and the page (page.py)."""
