"""The composition root: the engine and the Bytewax dataflow, with four rooms beside them
(``cli``, ``connectors``, ``jobs``, ``runtime``)."""
