"""Every key an image is known by, each computed in one place.

* :mod:`~taskgraph_images.keys.seed`: the seed recipe, the context hash of
  the 2016 decision task over a context's files;
* :mod:`~taskgraph_images.keys.tar`: taskgraph's context hash, the sha256
  of its context tar stream;
* :mod:`~taskgraph_images.keys.digest`: an image's digest inputs and the
  digest made from them, by either recipe
  (:class:`~taskgraph_images.keys.digest.CatalogKeys`);
* :mod:`~taskgraph_images.keys.taskgraph`: taskgraph's digest recipe and
  its cache namespaces and routes;
* :mod:`~taskgraph_images.keys.namespaces`: this library's index
  namespaces and the trusted search order;
* :mod:`~taskgraph_images.keys.indexkeys`: the namespaces a build config's
  cache keys search, compare against and record
  (:class:`~taskgraph_images.keys.indexkeys.IndexKeys`).

Importing this package loads none of them; import the module you need.
"""
