"""Human annotation: stratified sampling, balanced assignment, a blind web annotation app,
inter-annotator agreement, arbitration into gold labels, and Label Studio interchange.

Library API (the ``bugatlas sample/assign/annotate/agreement/gold`` commands are thin over it)::

    from bugatlas.annotate import draw_sample, assign, agreement, finalize
    s = draw_sample(store, "liu2025", per="repo", size=50, seed=7)
    assign(store, s.name, ["alice", "bob"], k=2, arbitrator="carol", owner="dana")
    report = agreement(store, s.name)          # Cohen, Fleiss, Krippendorff per dimension/level
    finalize(store, s.name)                    # agreed + arbitrated -> labels (human, "gold")
"""

from bugatlas.annotate.agreement import agreement, cohen_kappa
from bugatlas.annotate.assign import assign, set_roles
from bugatlas.annotate.gold import disagreements, export_gold, finalize, record_final
from bugatlas.annotate.sampling import Sample, cochran_size, draw_sample, get_sample
from bugatlas.annotate.work import latest_annotations, queue_for, save_annotation

__all__ = [
    "Sample", "agreement", "assign", "cochran_size", "cohen_kappa", "disagreements",
    "draw_sample", "export_gold", "finalize", "get_sample", "latest_annotations", "queue_for",
    "record_final", "save_annotation", "set_roles",
]  # fmt: skip
