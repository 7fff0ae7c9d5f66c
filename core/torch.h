// The LibTorch headers qtune uses: ATen, autograd and nn modules. A much smaller set than
// <torch/torch.h> (about a third of the compile time), and the precompiled header of every target.
#pragma once

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
