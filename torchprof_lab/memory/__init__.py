"""Peak memory of a step, predicted by running it (on meta stand-ins or for real) under a tracker."""
