"""tf.distribute strategies from the config's `training.strategy`.

Build and compile the model under `strategy.scope()`, and scale the global batch
size by `strategy.num_replicas_in_sync` so each replica keeps the configured batch.
"""

from __future__ import annotations

import tensorflow as tf

from models.config import StrategyConfig


def make_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
    """The strategy `config.kind` names.

    - default: TF's default strategy (one device: the first GPU, else the CPU).
    - mirrored: every local GPU; on a host without GPUs, its one CPU.
    - tpu: the TPU at `config.tpu_address` (a grpc:// address or a Cloud TPU name).
    - multi_worker: synchronous training over the workers named in TF_CONFIG; it must
      be created before the process runs any other TF op.
    """
    match config.kind:
        case "default":
            return tf.distribute.get_strategy()
        case "mirrored":
            return tf.distribute.MirroredStrategy()
        case "tpu":
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu_address)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        case "multi_worker":
            return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy kind {config.kind!r}")


def strategy_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The devices the strategy trains on: its replicas', or, for the default strategy,
    TF's default device (the first GPU, else the CPU)."""
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [devices[0].name]
    return list(strategy.extended.worker_devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes outputs: always, except non-chief multi-worker tasks."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )
