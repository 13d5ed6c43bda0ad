"""Building images: locally in a Docker engine (:mod:`.local`), inside a
build task with buildah (:mod:`.intask`, :mod:`.buildah`), and running a
task's payload in a local engine as a worker would (:mod:`.runtask`).

Nothing is imported here, so that each module costs only what it imports.
"""
