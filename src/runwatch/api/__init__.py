"""HTTP routers: parse parameters, call one query function, shape the answer."""
