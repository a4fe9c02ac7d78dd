"""The family behind `model.module`: a user's own preprocessing_fn and build_model.

Transform and the Trainer name `models.custom.preprocessing.preprocessing_fn` and
`models.custom.model.run_fn`, which load the module the config names (loader.py) and
call its functions; training, compression, export and serving are leanline's, as for the
bundled families.
"""
