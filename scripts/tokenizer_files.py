"""Where the real tokenizer files of the test families are, for the fixture generators and benchmarks.

The files are test data that live outside the repository: in the folder named by QTUNE_TOKENIZERS, else
in ../shared/fixtures/tokenizers next to the repository (the same rule as tests/support/files.cpp).
Each family is a folder NAME/ with the tokenizer.json and tokenizer_config.json of one Hugging Face
repository, listed in FAMILIES with where a user gets the same files.
"""
import hashlib
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# family folder -> the Hugging Face repository its files come from (identified from the files' contents;
# repositories get new revisions, so compare the sha256 in the NAME.meta.json that make_tokenizer_fixtures.py writes).
FAMILIES = {
    "llama2": "mistralai/Mistral-7B-v0.1",
    "llama3": "meta-llama/Meta-Llama-3-8B-Instruct (first revision)",
    "llama3_1": "meta-llama/Meta-Llama-3-8B-Instruct (later revision)",
    "qwen2_5": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3": "Qwen/Qwen3-0.6B",
    "gemma": "google/gemma-7b",
    "gemma3": "google/gemma-3-4b-it",
    "deepseek_v3": "deepseek-ai/DeepSeek-V3",
    "gptoss": "openai/gpt-oss-20b",
}


def tokenizers_root():
    """The folder holding NAME/tokenizer.json for every family."""
    configured = os.environ.get("QTUNE_TOKENIZERS")
    if configured:
        return os.path.abspath(configured)
    return os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "fixtures", "tokenizers"))


def family_dir(name):
    """The folder of one family; raises with a fix-it hint when its tokenizer.json is missing."""
    path = os.path.join(tokenizers_root(), name)
    if not os.path.isfile(os.path.join(path, "tokenizer.json")):
        raise SystemExit(f"{path}/tokenizer.json is missing: set QTUNE_TOKENIZERS to a folder with NAME/tokenizer.json "
                         f"(download the files of {FAMILIES.get(name, 'the model')} from Hugging Face)")
    return path


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
