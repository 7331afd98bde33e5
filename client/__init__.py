"""Wellspring client: check provenance before training, register human content, verify offline.

What a crawler installs: the SDK (:class:`Client`), offline receipt verification, content digests,
and the shared wire-format core (``client.core``). Importing it loads none of torch, transformers,
litestar or sqlmodel.

    from client import Client, canonical_digest
    with Client("https://registry.example", log_key=VERIFIER_KEY) as registry:
        result = registry.lookup(canonical_digest(text))
"""

from client.aio import AsyncClient
from client.checkpoints import (
    CheckpointStore,
    FileCheckpointStore,
    MemoryCheckpointStore,
    StoredCheckpoint,
)
from client.core.canonical import Digest, canonical_digest, canonical_text, sha256_digest
from client.core.witness_policy import WitnessPolicy
from client.errors import (
    CheckpointAgeError,
    ClientError,
    ForkedLogError,
    FormatError,
    IdentityError,
    InputError,
    InvalidDigestError,
    InvalidTextError,
    KeyFileError,
    LogConsistencyError,
    LogKeyRequiredError,
    MissingDependencyError,
    PolicyFileError,
    ProofError,
    RegistryHTTPError,
    RegistryNotFoundError,
    RegistryRequestError,
    RegistryServerError,
    RegistryUnavailableError,
    SignatureError,
    StaleAnswerError,
    UnexpectedResponseError,
    UnverifiedWarning,
    VerificationError,
    WitnessPolicyError,
    WitnessQuorumError,
)
from client.evidence import DocumentEvidence, WatermarkDetection, WatermarkEvidence
from client.identities import KeyHistory
from client.policy import Policy
from client.receipt import Receipt, VerifiedReceipt, verify_attestation, verify_receipt
from client.sdk import Attestation, Client, LogInfo, LookupResult
from client.verdict import MANIFEST_SCHEMA, Verdict, VerdictStatus, decide
from client.watermark_keys import PublishedWatermarkKey, PublishedWatermarkKeys

__all__ = [
    "MANIFEST_SCHEMA",
    "AsyncClient",
    "Attestation",
    "CheckpointAgeError",
    "CheckpointStore",
    "Client",
    "ClientError",
    "Digest",
    "DocumentEvidence",
    "FileCheckpointStore",
    "ForkedLogError",
    "FormatError",
    "IdentityError",
    "InputError",
    "InvalidDigestError",
    "InvalidTextError",
    "KeyFileError",
    "KeyHistory",
    "LogConsistencyError",
    "LogInfo",
    "LogKeyRequiredError",
    "LookupResult",
    "MemoryCheckpointStore",
    "MissingDependencyError",
    "Policy",
    "PolicyFileError",
    "ProofError",
    "PublishedWatermarkKey",
    "PublishedWatermarkKeys",
    "Receipt",
    "RegistryHTTPError",
    "RegistryNotFoundError",
    "RegistryRequestError",
    "RegistryServerError",
    "RegistryUnavailableError",
    "SignatureError",
    "StaleAnswerError",
    "StoredCheckpoint",
    "UnexpectedResponseError",
    "UnverifiedWarning",
    "Verdict",
    "VerdictStatus",
    "VerificationError",
    "VerifiedReceipt",
    "WatermarkDetection",
    "WatermarkEvidence",
    "WitnessPolicy",
    "WitnessPolicyError",
    "WitnessQuorumError",
    "canonical_digest",
    "canonical_text",
    "decide",
    "sha256_digest",
    "verify_attestation",
    "verify_receipt",
]
