"""A repository whose Python toolchain points at the project's virtual environment.

tools/bazel creates the environment (pinned by tools/requirements.txt) and passes its
location as FK_VENV through --repo_env; the default is the cache location tools/bazel uses.
"""

def _python_venv_impl(ctx):
    venv = ctx.os.environ.get("FK_VENV", "")
    if not venv:
        cache = ctx.os.environ.get("FK_CACHE", ctx.os.environ.get("HOME", "/root") + "/.cache/fused-kernels")
        venv = cache + "/venv"
    interpreter = venv + "/bin/python3"
    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
    # The launcher stub's own shebang: Debian has no `python`, only `python3`.
    stub_shebang = "#!/usr/bin/env python3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(interpreter = interpreter))
    ctx.file("WORKSPACE", "")

python_venv = repository_rule(
    implementation = _python_venv_impl,
    environ = ["FK_VENV", "FK_CACHE", "HOME"],
    local = True,
)
