"""Private: the wire protocol: frames and replies (:mod:`.protocol`), the parameters each
read takes (:mod:`.parameters`), the values a frame may carry (:mod:`.values`) and how
they are written (:mod:`.jsonsafe`)."""
