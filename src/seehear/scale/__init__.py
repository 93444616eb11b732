"""Scale and automate: hyperparameter search (tune.py over optuna), data-parallel training helpers and federated
training. A layer above tasks/: it drives the ordinary run lifecycle, so what it makes are ordinary run folders."""
