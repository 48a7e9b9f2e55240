"""prodready sample app: the service the collection's tests and demo deploy."""
