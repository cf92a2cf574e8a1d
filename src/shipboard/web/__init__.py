"""Server-rendered pages (Jinja2). The pages call services directly; live parts (log tail,
refresh) use the JSON API and its Server-Sent Events with the session cookie."""
