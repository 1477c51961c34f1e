"""The operational sources abasto captures: the sales database and the behaviour document store.

- :mod:`abasto.sources.sales_db` — schema ``sales`` (the seed's Amazon RDS) and its bulk loaders;
- :mod:`abasto.sources.behavior` — reps' analyses of big customers as pk/sk JSON documents (the
  seed's DynamoDB), behind the :class:`~abasto.sources.behavior.DocumentStore` port;
- :mod:`abasto.sources.freshretailnet` — import of the real FreshRetailNet-50K slice into the sales DB.
"""
