"""Private: the wire protocol: frames, replies, the values a frame may carry."""
