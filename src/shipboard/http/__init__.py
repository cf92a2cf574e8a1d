"""Request plumbing every route shares and that knows no domain: the request's transaction and
the wait for a database connection."""
