"""Batched generation at every checkpoint (issue 4).

Flow: ``plan`` resolves the run, its sets and checkpoints; ``items`` loads the
QA pairs to answer (question, reference, image path); ``runner`` loops over
checkpoints, loads one model per checkpoint through a backend from
``backends`` and writes each batch in its own transaction (``store``);
``summary`` gives the string-match table.
"""
