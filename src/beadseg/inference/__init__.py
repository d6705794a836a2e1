"""From a model to masks, instances and counts on images of any size."""
