"""The HTTP interfaces: the media job service's API (loopback, bearer token) and its client."""
