"""Seen@k and unseen evaluation sets (METHOD.md section 3).

``selection`` says which QA pairs qualify (SQL over the order manifest),
``sampling`` draws the unseen sets, ``build`` plans and writes sets in one
transaction, ``report`` lists them with overlap checks, and ``match`` is the
string-match scoring used for the quick accuracy table.
"""
