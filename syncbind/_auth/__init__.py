"""Private: who is on the other end of a connection, and whether they still may be."""
