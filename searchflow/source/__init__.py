"""The application database as a source system: reconciliation of its tables with the warehouse.

Extraction itself is ingestion's (``searchflow ingest --source app``, :mod:`searchflow.ingest.app`);
this stage answers whether the warehouse holds what the source holds (:func:`reconcile`).
"""

from __future__ import annotations

from searchflow.source.reconcile import GOAL, reconcile

__all__ = ["GOAL", "reconcile"]
