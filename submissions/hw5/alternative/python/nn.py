import numpy as np
from util import *
# do not include any more libraries here!
# do not put any code outside of functions!

# A correct alternative to the reference: loops where the reference broadcasts.

def initialize_weights(in_size,out_size,params,name=''):
    limit = (6.0 / (in_size + out_size)) ** 0.5
    W = np.zeros((in_size, out_size))
    for i in range(in_size):
        W[i] = limit * (2.0 * np.random.rand(out_size) - 1.0)
    b = np.array([0.0] * out_size)
    params['W' + name] = W
    params['b' + name] = b

def sigmoid(x):
    # clip so that exp never overflows; sigmoid(+-50) is 0 or 1 to double precision
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))

def forward(X,params,name='',activation=sigmoid):
    W = params['W' + name]
    b = params['b' + name]
    pre_act = np.zeros((X.shape[0], W.shape[1]))
    for n in range(X.shape[0]):
        pre_act[n] = np.dot(X[n], W) + b
    post_act = activation(pre_act)
    params['cache_' + name] = (X, pre_act, post_act)
    return post_act

def softmax(x):
    res = np.zeros(x.shape)
    for n in range(x.shape[0]):
        row = np.exp(x[n] - x[n].max())
        res[n] = row / row.sum()
    return res

def compute_loss_and_acc(y, probs):
    loss, correct = 0.0, 0
    for n in range(y.shape[0]):
        label = int(np.argmax(y[n]))
        loss -= np.log(probs[n, label])
        correct += int(np.argmax(probs[n]) == label)
    acc = correct / y.shape[0]
    return loss, acc

def sigmoid_deriv(post_act):
    res = post_act*(1.0-post_act)
    return res

def backwards(delta,params,name='',activation_deriv=sigmoid_deriv):
    W = params['W' + name]
    b = params['b' + name]
    X, pre_act, post_act = params['cache_' + name]
    d = delta * activation_deriv(post_act)
    grad_W = np.zeros(W.shape)
    grad_b = np.zeros(b.shape)
    grad_X = np.zeros(X.shape)
    for n in range(X.shape[0]):
        grad_W += np.outer(X[n], d[n])
        grad_b += d[n]
        grad_X[n] = np.dot(W, d[n])
    params['grad_W' + name] = grad_W
    params['grad_b' + name] = grad_b
    return grad_X

def get_random_batches(x,y,batch_size):
    indices = list(range(x.shape[0]))
    np.random.shuffle(indices)
    batches = []
    while indices:
        take, indices = indices[:batch_size], indices[batch_size:]
        batches.append((x[take], y[take]))
    return batches
