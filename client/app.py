"""The institution's ClientApp: trains and evaluates on its own rows only.

A node learns which institution it is and where its table lies from its own
``node_config`` (deployment: ``institution`` and ``data-path``) or, in simulation,
from its partition id and the run's data folder. Replies carry model weights and
aggregate metrics; rows, features and labels never leave the node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from fedrisk.client import private_round
from fedrisk.client.dp_trainer import train_private
from fedrisk.client.node_data import NodeData, institution_seed, load_node_data
from fedrisk.client.trainer import evaluate_model, train_local
from fedrisk.conf.privacy import ClippingSide, PrivacyMode
from fedrisk.conf.root import FedriskConfig, settings_from_run_config
from fedrisk.models.tabular import build_model, get_weights
from fedrisk.privacy.accountant import epsilon_spent
from fedrisk.privacy.calibration import PrivacyPlanError
from fedrisk.strategies import WEIGHT_KEY, messages


@dataclass(frozen=True)
class NodeSetup:
    """What a node knows about itself for one message."""

    settings: FedriskConfig
    institution: str
    data: NodeData


def node_setup(context: Context) -> NodeSetup:
    """Identify this node's institution and load its validated data.

    Raises
    ------
    ValueError
        If the node config names neither an institution nor a partition.
    fedrisk.data.errors.DataValidationError
        If the institution's table fails validation.
    """
    settings = settings_from_run_config(context.run_config)
    node_config = context.node_config
    if messages.NODE_INSTITUTION in node_config:
        institution = str(node_config[messages.NODE_INSTITUTION])
        path = Path(str(node_config[messages.NODE_DATA_PATH]))
    elif messages.PARTITION_ID in node_config:
        names = messages.institutions_of(context.run_config)
        institution = names[int(node_config[messages.PARTITION_ID])]
        path = Path(str(context.run_config[messages.DATA_DIR])) / institution / "train.parquet"
    else:
        raise ValueError(
            f"node config must set `institution` and `data-path`; got keys {sorted(node_config)}"
        )
    if settings.task.schema is None:
        raise ValueError("`task.schema` must be resolved before the run starts; got None")
    data = load_node_data(
        path,
        settings.task.schema,
        institution=institution,
        min_rows=settings.task.train.batch_size,
        seed=settings.seed,
    )
    return NodeSetup(settings=settings, institution=institution, data=data)


def _local_model(setup: NodeSetup, arrays: ArrayRecord) -> torch.nn.Module:
    model = build_model(setup.settings.task.model, setup.data.x_train.shape[1], seed=0)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def _node_record(setup: NodeSetup) -> ConfigRecord:
    return ConfigRecord({messages.INSTITUTION: setup.institution})


def query(msg: Message, context: Context) -> Message:
    """Answer the coordinator's roll call: which institution this node is.

    Under DP-SGD the node also plans its noise for the whole run here, before
    round 1, and reports what it has already spent (or refuses to take part).
    """
    setup = node_setup(context)
    metrics = MetricRecord({WEIGHT_KEY: setup.data.n_train})
    content = RecordDict({messages.NODE: _node_record(setup), messages.METRICS: metrics})
    if setup.settings.privacy.mode is PrivacyMode.dpsgd:
        try:
            node = private_round.node_privacy(
                context, setup.settings, setup.data, institution=setup.institution
            )
        except PrivacyPlanError as err:
            content[messages.REFUSAL] = private_round.refusal_record(str(err))
        else:
            metrics[messages.EPSILON] = epsilon_spent(
                node.spent_before,
                delta=node.budget.delta,
                accountant=setup.settings.privacy.accountant,
            )
            metrics[messages.EPSILON_BUDGET] = node.budget.epsilon
            metrics[messages.DELTA] = node.budget.delta
            metrics[messages.NOISE_MULTIPLIER] = node.noise_multiplier
    return Message(content=content, reply_to=msg)


def train(msg: Message, context: Context) -> Message:
    """Train the global model on this institution's rows for one round."""
    torch.set_num_threads(1)
    setup = node_setup(context)
    config = messages.config_of(msg.content)
    server_round = int(messages.number(config, messages.SERVER_ROUND))
    model = _local_model(setup, messages.arrays_of(msg.content))
    mu = messages.number(config, messages.PROXIMAL_MU) if messages.PROXIMAL_MU in config else 0.0
    if setup.settings.privacy.mode is PrivacyMode.dpsgd:
        return _train_private(msg, context, setup, model, server_round=server_round, mu=mu)
    result = train_local(
        model,
        setup.data.x_train,
        setup.data.y_train,
        setup.settings.task.train,
        seed=institution_seed(setup.settings.seed, setup.institution, server_round),
        proximal_mu=mu,
        global_weights=get_weights(model) if mu > 0 else None,
    )
    content = RecordDict(
        {
            messages.ARRAYS: ArrayRecord(model.state_dict()),
            messages.METRICS: MetricRecord(
                {WEIGHT_KEY: _weight(setup, result.n_examples), "train_loss": result.loss}
            ),
            messages.NODE: _node_record(setup),
        }
    )
    return Message(content=content, reply_to=msg)


def _train_private(
    msg: Message,
    context: Context,
    setup: NodeSetup,
    model: torch.nn.Module,
    *,
    server_round: int,
    mu: float,
) -> Message:
    """One DP-SGD round: gate on the budget, train, sign the ledger, reply."""
    settings = setup.settings
    try:
        node = private_round.node_privacy(
            context, settings, setup.data, institution=setup.institution
        )
    except PrivacyPlanError as err:
        refusal = private_round.refusal_record(str(err))
        return Message(content=_refusal_content(setup, refusal), reply_to=msg)
    decision, planned = private_round.gate(node, settings, setup.data)
    if not decision.allowed:
        refusal = private_round.budget_refusal(node, decision)
        return Message(content=_refusal_content(setup, refusal), reply_to=msg)
    trained = train_private(
        model,
        setup.data.x_train,
        setup.data.y_train,
        settings.task.train,
        private_round.dp_settings(settings.privacy, node.noise_multiplier),
        seed=institution_seed(settings.seed, setup.institution, server_round),
        proximal_mu=mu,
        global_weights=get_weights(model) if mu > 0 else None,
    )
    if trained.mechanism != planned:
        raise RuntimeError(f"{setup.institution}: trained {trained.mechanism}, gated {planned}")
    arrays = ArrayRecord(model.state_dict())
    digest = messages.update_digest(arrays)
    epsilon = decision.projected
    private_round.record_round(
        node,
        settings,
        server_round=server_round,
        mechanism=trained.mechanism,
        epsilon=epsilon,
        update_sha256=digest,
    )
    metrics = MetricRecord(
        {
            WEIGHT_KEY: trained.result.n_examples,
            "train_loss": trained.result.loss,
            messages.EPSILON: epsilon,
            messages.EPSILON_BUDGET: node.budget.epsilon,
            messages.DELTA: node.budget.delta,
            messages.NOISE_MULTIPLIER: node.noise_multiplier,
        }
    )
    content = RecordDict(
        {messages.ARRAYS: arrays, messages.METRICS: metrics, messages.NODE: _node_record(setup)}
    )
    return Message(content=content, reply_to=msg)


def _refusal_content(setup: NodeSetup, refusal: ConfigRecord) -> RecordDict:
    return RecordDict(
        {
            messages.NODE: _node_record(setup),
            messages.REFUSAL: refusal,
            messages.METRICS: MetricRecord({WEIGHT_KEY: setup.data.n_train}),
        }
    )


def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this institution's validation rows."""
    torch.set_num_threads(1)
    setup = node_setup(context)
    model = _local_model(setup, messages.arrays_of(msg.content))
    scores = evaluate_model(
        model, setup.data.x_val, setup.data.y_val, threshold=setup.settings.task.threshold
    )
    finite = {k: float(v) for k, v in scores.items() if v == v}  # NaN: one-class validation set
    content = RecordDict(
        {
            messages.METRICS: MetricRecord({WEIGHT_KEY: len(setup.data.y_val), **finite}),
            messages.NODE: _node_record(setup),
        }
    )
    return Message(content=content, reply_to=msg)


def _weight(setup: NodeSetup, n_examples: int) -> int:
    """FedAvg weight of an update: its rows, or 1 under institution-level DP.

    Flower's accounted DP-FedAvg (``privacy=central``) requires uniform weights.
    """
    return 1 if setup.settings.privacy.mode is PrivacyMode.central else n_examples


def central_clipping_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Apply Flower's ``fixedclipping_mod`` when the run clips at the institution."""
    if msg.metadata.message_type == MessageType.TRAIN:
        settings = settings_from_run_config(context.run_config)
        privacy = settings.privacy
        if (
            privacy.mode is PrivacyMode.central
            and privacy.central_clipping_side is ClippingSide.client
        ):
            return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def make_client_app(run_config: Mapping[str, str] | None = None) -> ClientApp:
    """Build the fedrisk ClientApp.

    Parameters
    ----------
    run_config : Mapping[str, str] | None (default: None)
        Entries merged into every message's ``context.run_config``. ``flwr run``
        supplies the run config itself; the simulation entry point passes it here
        because ``flwr.simulation.run_simulation`` has no run-config argument.
    """
    mods = [] if run_config is None else [_run_config_mod(dict(run_config))]
    mods.append(central_clipping_mod)
    client = ClientApp(mods=mods)
    client.query()(query)
    client.train()(train)
    client.evaluate()(evaluate)
    return client


def _run_config_mod(
    entries: dict[str, str],
) -> Callable[[Message, Context, Callable[[Message, Context], Message]], Message]:
    def inject(
        msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
    ) -> Message:
        # Flower refuses a changed ``run_config`` on the node's own Context, so the
        # app gets a copy that shares the node's ``state`` (persisted as usual).
        merged = Context(
            run_id=context.run_id,
            node_id=context.node_id,
            node_config=context.node_config,
            state=context.state,
            run_config={**context.run_config, **entries},
        )
        return call_next(msg, merged)

    return inject


app = make_client_app()
