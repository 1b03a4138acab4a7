import numpy as np
from util import *
# do not include any more libraries here!
# do not put any code outside of functions!

# Reference solution of CMU 16-720 HW5 Q2 (a fully connected network on a `params` dict).
# Shapes: X is [N, D] (examples in rows), W is [D, C], b is [C]; a layer computes X @ W + b.

############################## Q 2.1.2 ##############################
# initialize b to 0 vector
# b should be a 1D array, not a 2D array with a singleton dimension
# we will do XW + b.
# X be [Examples, Dimensions]
def initialize_weights(in_size, out_size, params, name=''):
    # Xavier (Glorot) uniform: Var[w] = 2 / (in + out), so the bound is sqrt(6 / (in + out))
    bound = np.sqrt(6.0 / (in_size + out_size))
    W = np.random.uniform(-bound, bound, size=(in_size, out_size))  # [in, out]
    b = np.zeros(out_size)                                         # [out]

    params['W' + name] = W
    params['b' + name] = b

############################## Q 2.2.1 ##############################
# x is a matrix
# a sigmoid activation function
def sigmoid(x):
    # 1 / (1 + e^-x) overflows e^-x for x << 0; the two branches below never exponentiate a
    # positive number, so sigmoid(-1000) is exactly 0 and sigmoid(1000) exactly 1, warning-free.
    x = np.asarray(x, dtype=np.float64)
    res = np.empty_like(x)
    pos = x >= 0
    res[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    res[~pos] = e / (1.0 + e)
    return res

############################## Q 2.2.1 ##############################
def forward(X, params, name='', activation=sigmoid):
    """
    Do a forward pass

    Keyword arguments:
    X -- input vector [Examples x D]
    params -- a dictionary containing parameters
    name -- name of the layer
    activation -- the activation function (default is sigmoid)
    """
    # get the layer parameters
    W = params['W' + name]     # [D, C]
    b = params['b' + name]     # [C]

    pre_act = X @ W + b        # [N, C]
    post_act = activation(pre_act)

    # store the pre-activation and post-activation values
    # these will be important in backprop
    params['cache_' + name] = (X, pre_act, post_act)

    return post_act

############################## Q 2.2.2  ##############################
# x is [examples,classes]
# softmax should be done for each row
def softmax(x):
    # subtracting each row's max leaves the softmax unchanged and keeps exp() <= 1
    shifted = x - np.max(x, axis=1, keepdims=True)   # [N, C]
    e = np.exp(shifted)
    res = e / np.sum(e, axis=1, keepdims=True)       # rows sum to 1
    return res

############################## Q 2.2.3 ##############################
# compute total loss and accuracy
# y is size [examples,classes]
# probs is size [examples,classes]
def compute_loss_and_acc(y, probs):
    # the total (not the mean) cross-entropy over the examples, natural log
    loss = -np.sum(y * np.log(probs))
    acc = np.mean(np.argmax(y, axis=1) == np.argmax(probs, axis=1))
    return loss, acc

############################## Q 2.3 ##############################
# we give this to you
# because you proved it
# it's a function of post_act
def sigmoid_deriv(post_act):
    res = post_act*(1.0-post_act)
    return res

def backwards(delta, params, name='', activation_deriv=sigmoid_deriv):
    """
    Do a backwards pass

    Keyword arguments:
    delta -- errors to backprop
    params -- a dictionary containing parameters
    name -- name of the layer
    activation_deriv -- the derivative of the activation_func
    """
    # everything you may need for this layer
    W = params['W' + name]                      # [D, C]
    b = params['b' + name]                      # [C]
    X, pre_act, post_act = params['cache_' + name]

    # do the derivative through activation first
    # (activation_deriv is a function of post_act)
    # then compute the derivative W, b, and X
    d_pre = delta * activation_deriv(post_act)  # [N, C]
    grad_W = X.T @ d_pre                        # [D, C], summed over the batch
    grad_b = np.sum(d_pre, axis=0)              # [C]
    grad_X = d_pre @ W.T                        # [N, D]

    # store the gradients
    params['grad_W' + name] = grad_W
    params['grad_b' + name] = grad_b
    return grad_X

############################## Q 2.4 ##############################
# split x and y into random batches
# return a list of [(batch1_x,batch1_y)...]
def get_random_batches(x, y, batch_size):
    # one random permutation: every example lands in exactly one batch; the last batch keeps
    # the remainder when batch_size does not divide the number of examples
    order = np.random.permutation(x.shape[0])
    batches = []
    for start in range(0, x.shape[0], batch_size):
        idx = order[start:start + batch_size]
        batches.append((x[idx], y[idx]))       # ([B, D], [B, C])
    return batches
