"""The institution's ClientApp: trains and evaluates on its own rows only.

A node learns which institution it is and where its table lies from its own
``node_config`` (deployment: ``institution`` and ``data-path``) or, in simulation,
from its partition id and the run's data folder. Replies carry model weights and
aggregate metrics; rows, features and labels never leave the node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

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
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from fedrisk.client import identity, private_round, released_models, secagg_node, secure_update
from fedrisk.client.error_replies import error_mod
from fedrisk.client.explain_reply import explain
from fedrisk.client.faults import fault_mod
from fedrisk.client.ledger_reply import ledger
from fedrisk.client.node_data import institution_seed
from fedrisk.client.node_setup import (
    NodeSetup,
    checked_identity,
    local_model,
    node_identity,
    node_record,
    node_setup,
    row_metrics,
    run_id_of,
)
from fedrisk.client.policy_rules import PolicyRefusal, threshold_floor
from fedrisk.client.private_update import TrainedUpdate, train_private_update
from fedrisk.client.risk_reply import risk
from fedrisk.client.secure_handlers import (
    abort_reply,
    as_abort,
    check_not_revealed,
    check_rows,
    consistency,
    key_shares,
    unmask,
)
from fedrisk.client.trainer import evaluate_model, train_local
from fedrisk.conf.privacy import ClippingSide, PrivacyMode
from fedrisk.conf.root import settings_from_run_config
from fedrisk.models.tabular import get_weights
from fedrisk.privacy.accountant import epsilon_spent
from fedrisk.privacy.calibration import PrivacyPlanError
from fedrisk.strategies import WEIGHT_KEY, messages
from fedrisk.strategies.risk_wire import RISK_MESSAGE_TYPE
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.wire import ProtocolAbort, Stage

UNMASK_ACTION = wire.UNMASK_MESSAGE_TYPE.split(".", 1)[1]
CONSISTENCY_ACTION = wire.CONSISTENCY_MESSAGE_TYPE.split(".", 1)[1]
KEYS_ACTION = wire.KEYS_MESSAGE_TYPE.split(".", 1)[1]
LEDGER_ACTION = messages.LEDGER_MESSAGE_TYPE.split(".", 1)[1]
EXPLAIN_ACTION = messages.EXPLAIN_MESSAGE_TYPE.split(".", 1)[1]
RISK_ACTION = RISK_MESSAGE_TYPE.split(".", 1)[1]
_LOG = logging.getLogger(__name__)


def query(msg: Message, context: Context) -> Message:
    """Answer the coordinator's roll call: which institution this node is.

    Under DP-SGD the node also plans its noise for the whole run here, before
    round 1, and reports what it has already spent (or refuses to take part). Under
    secure aggregation it advertises its signed key for the run and keeps its row
    count to itself.
    """
    setup = node_setup(context)
    secagg = setup.settings.secagg
    metrics = row_metrics(setup)
    content = RecordDict({messages.NODE: node_record(setup), messages.METRICS: metrics})
    content.update(identity.proof_records(msg.content, context, setup.institution))
    if secagg.enabled:
        try:
            advert = secagg_node.advertisement(
                context,
                setup.institution,
                messages.config_of(msg.content, wire.SETUP),
                rounds=setup.settings.rounds,
            )
        except (ProtocolAbort, messages.MalformedMessage) as err:
            content[wire.ABORT] = secagg_node.abort_record(as_abort(err, Stage.advertise))
        else:
            content[wire.ADVERT] = ConfigRecord({wire.ADVERT_KEY: advert})
    if setup.settings.privacy.mode is PrivacyMode.dpsgd:
        try:
            node = private_round.node_privacy(
                context,
                setup.settings,
                setup.data,
                institution=setup.institution,
                policy=setup.policy,
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
    settings = setup.settings
    config = messages.config_of(msg.content)
    server_round = int(messages.number(config, messages.SERVER_ROUND))
    prepared = None
    if settings.secagg.enabled:
        try:
            prepared = secagg_node.prepare_round(
                msg,
                context,
                secagg=settings.secagg,
                institution=setup.institution,
                server_round=server_round,
                rounds=settings.rounds,
                min_threshold_fraction=threshold_floor(setup.policy),
            )
            check_rows(setup)
            check_not_revealed(context, setup.institution, server_round)
        except secagg_node.Readvertised as err:
            readvertised = secagg_node.readvertise_record(err)
            readvertised[messages.NODE] = node_record(setup)
            return Message(content=RecordDict(dict(readvertised.items())), reply_to=msg)
        except ProtocolAbort as err:
            return abort_reply(msg, setup, err)
    received = messages.arrays_of(msg.content)
    released_models.note_trained_from(
        context, run_id=run_id_of(context), digest=messages.update_digest(received)
    )
    model = local_model(setup, received)
    mu = messages.number(config, messages.PROXIMAL_MU) if messages.PROXIMAL_MU in config else 0.0
    if settings.privacy.mode is PrivacyMode.dpsgd:
        update = train_private_update(context, setup, model, server_round=server_round, mu=mu)
        if isinstance(update, RecordDict):
            return Message(content=update, reply_to=msg)
    else:
        result = train_local(
            model,
            setup.data.x_train,
            setup.data.y_train,
            settings.task.train,
            seed=institution_seed(settings.seed, setup.institution, server_round),
            proximal_mu=mu,
            global_weights=get_weights(model) if mu > 0 else None,
        )
        update = TrainedUpdate(ArrayRecord(model.state_dict()), result.n_examples, result.loss)
    weight = _weight(setup, update.n_examples)
    metrics: dict[str, int | float | list[int] | list[float]] = dict(update.metrics)
    if prepared is None:
        sent = update.arrays
        metrics[WEIGHT_KEY] = weight  # the FedAvg weight: a release listed in the README
        if setup.policy.releases.train_loss:
            metrics["train_loss"] = update.loss
        content = RecordDict({messages.ARRAYS: sent})
    else:
        records = secure_update.masked_reply(
            prepared,
            context,
            setup.settings,
            received=received,
            trained=update.arrays,
            clipping_norm=_clipping_norm(config),
            weight=weight,
            loss=update.loss,
            institution=setup.institution,
            rng_seed=institution_seed(settings.seed, setup.institution, server_round),
        )
        content = RecordDict(records)
        sent = content.array_records[wire.MASKED]
    resent = None if update.record is None else update.record(messages.update_digest(sent))
    if resent is not None:
        content[messages.RESENT] = resent
    content[messages.METRICS] = MetricRecord(metrics)
    content[messages.NODE] = node_record(setup)
    content[messages.BINDING] = ConfigRecord(
        {messages.RUN_ID: run_id_of(context), messages.SERVER_ROUND: server_round}
    )
    return Message(content=content, reply_to=msg)


def _clipping_norm(config: ConfigRecord) -> float | None:
    value = config.get(KEY_CLIPPING_NORM)
    return float(value) if isinstance(value, int | float) else None


def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate a global model on this institution's validation rows, if the policy allows.

    Only a model this node was sent to train from in the run, or (once) the run's final
    model (config ``final-model: true``), over at least the policy's least rows; anything
    else is refused naming ``releases.evaluation`` (see `fedrisk.client.released_models`).
    """
    torch.set_num_threads(1)
    setup = node_setup(context)
    arrays = messages.arrays_of(msg.content)
    config = msg.content.config_records.get(messages.CONFIG)
    try:
        released_models.check_evaluation(
            context,
            setup.policy,
            run_id=run_id_of(context),
            digest=messages.update_digest(arrays),
            rows=len(setup.data.y_val),
            final=config is not None and config.get(messages.FINAL_MODEL) is True,
        )
    except PolicyRefusal as err:
        _LOG.warning("%s refused an evaluation: %s", setup.institution, err)
        refused = RecordDict(
            {
                messages.REFUSAL: released_models.refusal_record(setup.institution, err),
                messages.NODE: node_record(setup),
            }
        )
        return Message(content=refused, reply_to=msg)
    model = local_model(setup, arrays)
    task = setup.settings.task
    scores = evaluate_model(
        model,
        setup.data.x_val,
        setup.data.y_val,
        threshold=task.threshold,
        fpr=task.false_alarm_rate,
        cost_ratio=task.cost_ratio,
    )
    finite = {k: float(v) for k, v in scores.items() if v == v}  # NaN: one-class validation set
    if setup.settings.secagg.enabled:
        finite.pop("n", None)  # the row count stays at the bank under secure aggregation
    content = RecordDict(
        {
            messages.METRICS: MetricRecord({WEIGHT_KEY: _eval_weight(setup), **finite}),
            messages.NODE: node_record(setup),
        }
    )
    return Message(content=content, reply_to=msg)


def _eval_weight(setup: NodeSetup) -> int:
    """Weight of a bank's validation metrics: its rows, or 1 under secure aggregation.

    Under secure aggregation no row count travels in the clear, so the federated
    validation metrics are the unweighted mean over institutions.
    """
    return 1 if setup.settings.secagg.enabled else len(setup.data.y_val)


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
            and not settings.secagg.enabled  # then the training handler clips before masking
        ):
            return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def policy_mod(
    msg: Message, context: Context, call_next: Callable[[Message, Context], Message]
) -> Message:
    """Check every message's run against the bank's policy before any handler runs.

    A run that asks for less than the policy is answered with a typed refusal naming
    the rule (`fedrisk.client.policy_rules.PolicyRefusal`): nothing is trained, masked,
    evaluated or explained, and the refusal is in the coordinator's run record.
    """
    try:
        checked_identity(context)
    except PolicyRefusal as err:
        institution = node_identity(context).institution
        _LOG.warning("%s refused a %s message: %s", institution, msg.metadata.message_type, err)
        content = RecordDict(
            {
                messages.NODE: ConfigRecord({messages.INSTITUTION: institution}),
                messages.METRICS: MetricRecord(),
                messages.REFUSAL: ConfigRecord(
                    {
                        messages.REFUSAL_REASON: f"{institution}: {err}",
                        messages.REFUSAL_RULE: err.rule,
                    }
                ),
            }
        )
        if msg.metadata.message_type == MessageType.QUERY:  # the roll call: who refuses
            content.update(identity.proof_records(msg.content, context, institution))
        return Message(content=content, reply_to=msg)
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
    mods: list[Callable[[Message, Context, Callable[[Message, Context], Message]], Message]]
    mods = [error_mod]  # outermost: no exception text (cell values, paths) leaves the node
    mods += [] if run_config is None else [run_config_mod(dict(run_config))]
    mods += [policy_mod, fault_mod, central_clipping_mod]
    client = ClientApp(mods=mods)
    client.query()(query)
    client.train()(train)
    client.evaluate()(evaluate)
    client.query(UNMASK_ACTION)(unmask)
    client.query(CONSISTENCY_ACTION)(consistency)
    client.query(KEYS_ACTION)(key_shares)
    client.query(LEDGER_ACTION)(ledger)
    client.query(EXPLAIN_ACTION)(explain)
    client.query(RISK_ACTION)(risk)
    return client


def run_config_mod(
    entries: dict[str, str],
) -> Callable[[Message, Context, Callable[[Message, Context], Message]], Message]:
    """Build a mod that merges ``entries`` into every message's ``context.run_config``.

    ``flwr.simulation.run_simulation`` cannot pass a run config to the ClientApps.
    """

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
