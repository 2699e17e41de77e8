"""Structs shared by the engine, the service and the client: the summary tree (the domain) and the wire.

One family a module. `recursum.clients` and `recursum.service` both import from here and from nowhere
else of each other, so server and client encode and decode exactly the same types, and the engine never
imports the client package.
"""
