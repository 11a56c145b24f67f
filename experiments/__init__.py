"""Experiments that train and score several models with the trainer's own code (`python -m experiments.NAME`)."""
