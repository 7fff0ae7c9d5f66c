# Sourced by the scripts: where qtune's Python virtual environment lives. Outside the repository, so every
# clone on a machine (CI's fresh one too) shares one environment and its 2.7 GB of wheels instead of
# installing them again. QTUNE_VENV moves it; CMake looks in the same place (cmake/python_torch.cmake).
QTUNE_VENV=${QTUNE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qtune/venv}
QTUNE_PYTHON=$QTUNE_VENV/bin/python
export QTUNE_VENV QTUNE_PYTHON
