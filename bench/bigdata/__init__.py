"""The pieces of ``bench/big_data.py``, each usable on its own.

``dataset``: the load generator (a dataset of several GB written chunk by chunk, its MLP);
``memory``: the sampler (VmRSS, VmHWM, PSS and CPU of process trees from ``/proc``, disk
allocated under a directory); ``baseline``: what TensorFlow costs by itself in a fresh process;
``report``: the printed table and summary.
"""
