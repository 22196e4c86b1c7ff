"""What a task is: the registry (tasks/<name>/forgetbench.yaml), data loading and hashing, lite generators, scorers."""
