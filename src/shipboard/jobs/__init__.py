"""The job runtime: one schedule with its last runs in the database, run on the elected node.

Generic and low (beside ``db``): it knows nothing of the domains. Each domain declares its work
in its own ``tasks.py``; the process entry points (``shipboard.background``) gather them.
"""
