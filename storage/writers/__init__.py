"""Row builders of the PostgreSQL sink, one per feature: each turns the twin outputs of a batch
into its rows (pure, testable alone) and writes them on the batch's transaction."""
