import numpy as np
import scipy.io
from nn import *

# Reference solution of Q3: a 1024-64-36 network (sigmoid hidden layer, softmax output) on NIST36.
import matplotlib
matplotlib.use("Agg")          # figures are written to files, never shown: the script never blocks
import matplotlib.pyplot as plt

np.random.seed(0)

train_data = scipy.io.loadmat('../data/nist36_train.mat')
valid_data = scipy.io.loadmat('../data/nist36_valid.mat')
test_data = scipy.io.loadmat('../data/nist36_test.mat')

train_x, train_y = train_data['train_data'], train_data['train_labels']   # [N, 1024], [N, 36]
valid_x, valid_y = valid_data['valid_data'], valid_data['valid_labels']
test_x, test_y = test_data['test_data'], test_data['test_labels']

max_iters = 50
# pick a batch size, learning rate
batch_size = 32
learning_rate = 5e-3
hidden_size = 64

params = {}

# initialize layers
initialize_weights(train_x.shape[1], hidden_size, params, "layer1")
initialize_weights(hidden_size, train_y.shape[1], params, "output")
layer1_W_initial = np.copy(params["Wlayer1"])   # [1024, 64], for Q3.3


def evaluate(x, y):
    """(total loss, accuracy) of the current network on x [N, 1024], y [N, 36]."""
    h1 = forward(x, params, 'layer1')
    probs = forward(h1, params, 'output', softmax)
    return compute_loss_and_acc(y, probs)


train_loss, valid_loss, train_acc, valid_acc = [], [], [], []
for itr in range(max_iters):
    total_loss = 0
    total_acc = 0
    # a fresh shuffle every epoch
    batches = get_random_batches(train_x, train_y, batch_size)
    for xb, yb in batches:
        # training loop can be exactly the same as q2!
        h1 = forward(xb, params, 'layer1')                    # [B, 64]
        probs = forward(h1, params, 'output', softmax)        # [B, 36]
        loss, acc = compute_loss_and_acc(yb, probs)
        total_loss += loss
        total_acc += acc * xb.shape[0] / train_x.shape[0]
        delta2 = backwards(probs - yb, params, 'output', linear_deriv)
        backwards(delta2, params, 'layer1', sigmoid_deriv)
        for name in ('layer1', 'output'):
            params['W' + name] -= learning_rate * params['grad_W' + name]
            params['b' + name] -= learning_rate * params['grad_b' + name]

    # record training and validation loss (per example) and accuracy for plotting
    train_loss.append(total_loss / train_x.shape[0])
    train_acc.append(total_acc)
    loss, acc = evaluate(valid_x, valid_y)
    valid_loss.append(loss / valid_x.shape[0])
    valid_acc.append(acc)
    if itr % 2 == 0:
        print("itr: {:02d} \t loss: {:.2f} \t acc : {:.2f}".format(itr, total_loss, total_acc))

# run on validation set and report accuracy! should be above 75%
print('Validation accuracy: ', valid_acc[-1])
_, test_acc = evaluate(test_x, test_y)
print('Test accuracy: ', test_acc)

import pickle
saved_params = {k:v for k,v in params.items() if '_' not in k}
with open('q3_weights.pickle', 'wb') as handle:
    pickle.dump(saved_params, handle, protocol=pickle.HIGHEST_PROTOCOL)

# Q3.1: loss and accuracy curves
for name, train_curve, valid_curve in (("loss", train_loss, valid_loss), ("accuracy", train_acc, valid_acc)):
    plt.figure()
    plt.plot(range(len(train_curve)), train_curve, label="training")
    plt.plot(range(len(valid_curve)), valid_curve, label="validation")
    plt.xlabel("epoch")
    plt.ylabel("average " + name if name == "loss" else name)
    plt.legend()
    plt.grid()
    plt.savefig("q3_%s.png" % name)
    plt.close()

# Q3.3: first-layer weights before and after training, as a grid of 32x32 images (8x8 for 64)
def mosaic(columns):
    """Columns of W [1024, H] as one picture of ceil(sqrt(H)) tiles a side (1-pixel gaps)."""
    side = int(np.ceil(np.sqrt(columns.shape[1])))
    tiles = np.full((side * 33, side * 33), np.nan)
    for i in range(columns.shape[1]):
        r, c = divmod(i, side)
        tiles[r * 33:r * 33 + 32, c * 33:c * 33 + 32] = columns[:, i].reshape(32, 32).T
    return tiles

for title, W in (("initialization", layer1_W_initial), ("training", params['Wlayer1'])):
    plt.figure(figsize=(8, 8))
    plt.imshow(mosaic(W), cmap="Greys")
    plt.axis("off")
    plt.title("Layer 1 weights after " + title)
    plt.savefig("q3_weights_%s.png" % title)
    plt.close()

# Q3.4: confusion matrix on the test set (rows: true class, columns: predicted)
confusion_matrix = np.zeros((train_y.shape[1], train_y.shape[1]))
h1 = forward(test_x, params, 'layer1')
test_probs = forward(h1, params, 'output', softmax)
np.add.at(confusion_matrix, (np.argmax(test_y, axis=1), np.argmax(test_probs, axis=1)), 1)

import string
plt.figure(figsize=(8, 8))
plt.imshow(confusion_matrix, interpolation='nearest')
plt.grid()
plt.xticks(np.arange(36), string.ascii_uppercase[:26] + ''.join([str(_) for _ in range(10)]))
plt.yticks(np.arange(36), string.ascii_uppercase[:26] + ''.join([str(_) for _ in range(10)]))
plt.xlabel("predicted label")
plt.ylabel("true label")
plt.colorbar()
plt.savefig("q3_confusion.png")
plt.close()
