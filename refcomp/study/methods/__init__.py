"""The study's built-in methods, registered with :func:`refcomp.study.register_method`.

One module per family; :mod:`refcomp.study.registry` imports them on first
lookup.  Each module imports the algorithm it sweeps; no algorithm package
imports the study.

- :mod:`.quantize`: ``uniform`` (QU), ``kmeans`` (KM), ``kmeans_optimal``,
  ``affine``, ``fixed_point``, ``power_of_two`` (flat theta_k);
- :mod:`.prune`: ``magnitude`` (flat theta_k);
- :mod:`.compress`: ``deep`` (flat theta_k);
- :mod:`.layer`: ``structured`` and ``obd``, which see whole layers (and,
  for OBD, the model and a calibration split);
- :mod:`.decompose`: ``pca`` (seed 004), ``svd``, ``tucker2`` and ``cp``
  (low-rank factorized weights of :mod:`refcomp.decompose`).
- :mod:`.integer`: ``int8`` (I8), a layer as an integer-only layer
  (:mod:`refcomp.integer`), calibrated on the calibration split.
- :mod:`.hashing`: ``hashed`` (HashedNets, a layer method whose W becomes a
  :class:`refcomp.hashing.HashedWeight`);
- :mod:`.nnc`: ``nnc`` (MPEG NNC core: dependent quantization + DeepCABAC,
  swept over -qp);
- :mod:`.spectral`: ``spectral`` (spectral sparsification by effective
  resistance, a layer method).
"""
