"""The demo: :mod:`.run` (``phrx demo``: one node on embedded defaults, cleaned up
however it ends) and :mod:`.scenario` (the study's steps, checked over HTTP)."""
