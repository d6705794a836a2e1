"""A pool of worker processes beside the network, with the arrays of each call handed over in shared memory. No
torch here: a spawned worker starts in about a second."""
