"""Models for training: the serving base (same directory, same quantization) with a fresh or resumed LoRA,
and the settings every training method shares (`LoraTraining`, which each method's config extends), and
the trainer every method runs, with its reporting (`training_callbacks`).

QLoRA is the base in bitsandbytes nf4 with trainable LoRA weights in fp32; it runs on CPU and CUDA.
Everything else the trainers need (tokenizer, device, dtype) is resolved the way the service
resolves it, so an adapter trained here loads there unchanged.
"""

import tempfile
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec
import torch
from msgspec import Meta

from recursum.service.engine.models.runtime import (
    base_directory,
    quantization_config,
    resolve_device,
    resolve_dtype,
)
from recursum.training.callbacks import METRICS_FILE, MetricsLog, ProgressBar

Head = Literal["causal", "reward"]
_NOT_ADAPTED = {"lm_head", "score"}  # output layers: the reward head is trained whole, never LoRA-adapted


class LoraSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The base model and the LoRA put on it."""

    base: str | None = None  # HF directory, .gguf or hub id; None = the embedded default model
    quantization: Literal["nf4", "none"] = "nf4"  # nf4 = QLoRA
    rank: Annotated[int, Meta(ge=1, le=256)] = 16
    alpha: Annotated[int, Meta(ge=1, le=512)] = 32
    dropout: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.05
    init_adapter: str | None = None  # continue training this adapter instead of a fresh one


class LoraTraining(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every training method's config shares (TRL's `TrainingArguments` part): the model and LoRA,
    the schedule and the sequence budget. `RewardTraining`, `DpoTraining` and `SftTraining` extend it with
    their own fields, and a method whose learning rate or batch size differs says so in its
    `default_learning_rate` / `default_batch_size`."""

    default_learning_rate: ClassVar[float] = 2e-4
    default_batch_size: ClassVar[int] = 4

    lora: LoraSettings = LoraSettings()
    epochs: Annotated[float, Meta(gt=0, description="Passes over the training data.")] = 1.0
    max_steps: Annotated[int, Meta(description=(
        "Optimizer steps to run; > 0 overrides `epochs` (bounded benchmark runs), -1 trains by epochs."
    ))] = -1
    learning_rate: Annotated[float, Meta(gt=0, description=(
        "Initial AdamW learning rate; unset, the method's `default_learning_rate`."
    ))] | None = None
    batch_size: Annotated[int, Meta(ge=1, description=(
        "Examples per optimizer step (pairs, for the preference methods); unset, the method's "
        "`default_batch_size`."
    ))] | None = None
    max_tokens: Annotated[int, Meta(ge=64, description=(
        "Token budget of one training sequence (within the model's window); the prompt's passage is "
        "trimmed to fit."
    ))] = 1024
    seed: Annotated[int, Meta(description=(
        "Seed the trainer sets when training starts (data order, dropout); `train reward` also draws its "
        "held-out groups with it."
    ))] = 0
    early_stop: Annotated[int, Meta(ge=1, description=(
        "Stop once the held-out loss has not improved for this many evaluations, and keep the adapter of "
        "the best one; unset, train the whole schedule. Needs held-out data."
    ))] | None = None
    eval_steps: Annotated[int, Meta(ge=1, description=(
        "Optimizer steps between held-out evaluations (when there is held-out data)."
    ))] = 10
    report_to: tuple[Literal["tensorboard"], ...] = ()  # also log to these trackers (beside the adapter)

    def __post_init__(self) -> None:
        # Unset method defaults are filled in here, once, so every constructed config holds numbers.
        if self.learning_rate is None:
            msgspec.structs.force_setattr(self, "learning_rate", self.default_learning_rate)
        if self.batch_size is None:
            msgspec.structs.force_setattr(self, "batch_size", self.default_batch_size)


def load_tokenizer(base: str | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_directory(base))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def training_dtype() -> torch.dtype:
    """bf16 autocast where the hardware runs it natively, as the service does."""
    return resolve_dtype("auto", resolve_device("auto"))


def trainable_model(settings: LoraSettings, head: Head):
    """The base with a trainable LoRA: a causal LM (SFT, DPO), or a one-output sequence classifier
    whose `score` head is trained whole (the reward model)."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    device = resolve_device("auto")
    dtype = training_dtype()
    quantization = quantization_config(settings.quantization, dtype, device)
    directory = base_directory(settings.base)
    placement = {"": device.type if device.type == "cpu" else 0}
    kwargs = {"quantization_config": quantization, "device_map": placement}
    if head == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=1, **kwargs)
        model.config.pad_token_id = load_tokenizer(settings.base).pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    if quantization is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if settings.init_adapter is not None:
        if not (Path(settings.init_adapter) / "adapter_config.json").is_file():
            raise ValueError(f"--init-adapter {settings.init_adapter} is not a LoRA adapter directory")
        peft_model = PeftModel.from_pretrained(model, settings.init_adapter, is_trainable=True)
    else:
        peft_model = get_peft_model(model, LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=sorted(_linear_module_names(model) - _NOT_ADAPTED),
            modules_to_save=["score"] if head == "reward" else None,
            task_type="SEQ_CLS" if head == "reward" else "CAUSAL_LM",
        ))
    if head == "reward":
        _cast_inputs_to_weight_dtype(peft_model.base_model.model.score)
    return peft_model


def _cast_inputs_to_weight_dtype(module: torch.nn.Module) -> None:
    """TRL (1.16) turns a quantized model's trainable weights, the score head among them, to bf16 after the
    base's norms were made fp32 for k-bit training, so the head meets fp32 hidden states ("expected m1 and
    m2 to have the same dtype"). peft casts LoRA inputs itself, not those of a module it only saves: cast
    them to the head's trainable weight's dtype at call time, whatever it has become by then."""
    def cast(_, inputs):
        dtype = next(p for p in module.parameters() if p.requires_grad).dtype
        return tuple(x.to(dtype) if torch.is_floating_point(x) else x for x in inputs)

    module.register_forward_pre_hook(cast)


def _keep_training_dtype(model) -> None:
    """TRL's trainers turn a quantized model's trainable weights to bf16 when they are built (the QLoRA
    paper's choice; `trl/trainer/reward_trainer.py`, `dpo_trainer.py`, `sft_trainer.py`). Where bf16 is
    not native (a CPU without AVX-512-BF16 or AMX) a bf16 LoRA matmul ran 12x slower than fp32 here and a
    reward step took 95 s instead of 50, so the weights go back to fp32 before the optimizer is made."""
    if training_dtype() != torch.float32:
        return
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def make_trainer(trainer_class, model, args, dataset, tokenizer, eval_dataset=None, callbacks=()):
    """A TRL trainer on `model` with its trainable weights in the training dtype (`_keep_training_dtype`),
    reporting through `callbacks` instead of transformers' own printer and bar (which write to stdout)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer = trainer_class(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                            processing_class=tokenizer, callbacks=list(callbacks))
    for replaced in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(replaced)
    _keep_training_dtype(trainer.model)
    return trainer


def _linear_module_names(model) -> set[str]:
    """Leaf names of every linear layer (plain or bitsandbytes-quantized), e.g. q_proj, up_proj."""
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) or type(module).__name__ in {"Linear4bit", "Linear8bitLt"}}


def sequence_limit(max_tokens: int, model) -> int:
    """The token budget of one training sequence: the method's, within the model's window."""
    return min(max_tokens, model.config.max_position_embeddings)


def load_trainable(config: LoraTraining, head: Head):
    """What a method trains with: (tokenizer, the base with a trainable LoRA, the token budget of one
    sequence)."""
    tokenizer = load_tokenizer(config.lora.base)
    model = trainable_model(config.lora, head=head)
    return tokenizer, model, sequence_limit(config.max_tokens, model)


def run_trainer(trainer_class, args_class, config: LoraTraining, model, dataset, tokenizer, out: Path,
                eval_dataset=None, **method_args):
    """Train `model` on `dataset` with a TRL trainer whose arguments are the method's `method_args` plus the
    shared `trainer_args` (its output directory a scratch one, removed after), reporting as
    `training_callbacks` says into `out`; returns the trainer and what its `train()` returned."""
    if config.early_stop and eval_dataset is None:
        raise ValueError("early stopping needs held-out data to watch (--held-out > 0)")
    with tempfile.TemporaryDirectory() as scratch:
        args = args_class(**method_args, **trainer_args(config, scratch, evaluates=eval_dataset is not None))
        trainer = make_trainer(trainer_class, model, args, dataset, tokenizer, eval_dataset,
                               training_callbacks(config, out))
        return trainer, trainer.train()


def training_callbacks(config: LoraTraining, out: Path) -> list:
    """A progress bar on stderr, the per-step log beside the adapter, early stopping and trackers as
    `config` asks."""
    from transformers import EarlyStoppingCallback
    from transformers.integrations import TensorBoardCallback, is_tensorboard_available

    callbacks = [ProgressBar(out.name), MetricsLog(out / METRICS_FILE)]
    if config.early_stop:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stop))
    if "tensorboard" in config.report_to:
        if not is_tensorboard_available():
            raise ValueError("--report-to tensorboard needs the tensorboard package: pip install tensorboard")
        callbacks.append(TensorBoardCallback(tb_writer=_summary_writer(out / "tensorboard")))
    return callbacks


def _summary_writer(directory: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        from tensorboardX import SummaryWriter
    return SummaryWriter(log_dir=str(directory))


def trainer_args(method: LoraTraining, output_dir: str, evaluates: bool = False) -> dict:
    """TrainingArguments every method shares, from the method config's `LoraTraining` fields: every step
    logged (to our callbacks, no tracker unless asked), bf16 autocast where native, CPU when there is no
    CUDA; checkpoints only where early stopping must restore the best one."""
    device = resolve_device("auto")
    args = {"output_dir": output_dir, "num_train_epochs": method.epochs, "max_steps": method.max_steps,
            "learning_rate": method.learning_rate, "per_device_train_batch_size": method.batch_size,
            "seed": method.seed, "save_strategy": "no", "report_to": [], "gradient_checkpointing": False,
            "logging_steps": 1, "disable_tqdm": True,
            "bf16": training_dtype() == torch.bfloat16, "use_cpu": device.type == "cpu"}
    if evaluates:
        args |= {"eval_strategy": "steps", "eval_steps": method.eval_steps}
    if evaluates and method.early_stop:
        args |= {"save_strategy": "steps", "save_steps": method.eval_steps, "load_best_model_at_end": True,
                 "metric_for_best_model": "eval_loss", "greater_is_better": False, "save_total_limit": 2}
    return args
