"""Framework-free logic: configuration, errors, images, models, compilation, runtimes."""
