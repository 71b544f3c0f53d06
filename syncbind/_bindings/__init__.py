"""Private: the parts a binding is assembled from, its events, its registry and its request."""
