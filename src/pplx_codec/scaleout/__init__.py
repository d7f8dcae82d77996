"""The implementation behind :mod:`pplx_codec.dask` (import that module, not
this package): exact search over a ``dask.array`` of codes or int8 vectors
(``sharded_search``), shards on disk as one lazy array (``shards``), and
distributed embedding into shards (``embed``).  Needs the ``dask`` extra.
"""
