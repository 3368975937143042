"""The demo and the project's own sample data.

:mod:`.run` (``phrx demo``: one node on embedded defaults, cleaned up however it ends),
:mod:`.scenario` (the study's steps, checked over HTTP), :mod:`.sample_data` (a generated
transaction Bundle of the study's traveller; the ``phrx load`` tests load it).
"""
