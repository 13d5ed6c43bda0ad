"""Docker images themselves: the engine client (:mod:`.engine`), image
artifacts saved and loaded (:mod:`.artifacts`), their compression
(:mod:`.compression`) and the tar streams they and build contexts are
(:mod:`.tarball`).

Nothing is imported here: :mod:`.compression` must stay light to import.
"""
