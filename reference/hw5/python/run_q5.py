import numpy as np
import scipy.io
from nn import *
from collections import Counter

# Reference solution of Q5: a 1024-32-32-32-1024 autoencoder trained with momentum.
import matplotlib
matplotlib.use("Agg")          # figures are written to files, never shown: the script never blocks
import matplotlib.pyplot as plt
import string

np.random.seed(0)

train_data = scipy.io.loadmat('../data/nist36_train.mat')
valid_data = scipy.io.loadmat('../data/nist36_valid.mat')

# we don't need labels now!
train_x = train_data['train_data']     # [N, 1024]
valid_x = valid_data['valid_data']

max_iters = 100
# pick a batch size, learning rate
batch_size = 36
learning_rate =  3e-5
hidden_size = 32
lr_rate = 20
batches = get_random_batches(train_x,np.ones((train_x.shape[0],1)),batch_size)
batch_num = len(batches)

params = Counter()

# Q5.1 & Q5.2
# initialize layers here: 1024 -> 32 (ReLU) -> 32 (ReLU) -> 32 (ReLU) -> 1024 (sigmoid)
LAYERS = ('layer1', 'layer2', 'layer3', 'output')
initialize_weights(1024, hidden_size, params, 'layer1')
initialize_weights(hidden_size, hidden_size, params, 'layer2')
initialize_weights(hidden_size, hidden_size, params, 'layer3')
initialize_weights(hidden_size, 1024, params, 'output')


def reconstruct(x):
    """The autoencoder's output [N, 1024] for x [N, 1024] (the caches are filled for backwards)."""
    h1 = forward(x, params, 'layer1', relu)           # [N, 32]
    h2 = forward(h1, params, 'layer2', relu)          # [N, 32]
    h3 = forward(h2, params, 'layer3', relu)          # [N, 32]
    return forward(h3, params, 'output', sigmoid)     # [N, 1024]


losses = []
# should look like your previous training loops
for itr in range(max_iters):
    total_loss = 0
    for xb,_ in batches:
        # forward pass; the loss is the total squared error
        out = reconstruct(xb)
        total_loss += np.sum((xb - out) ** 2)
        # backward: d/d out of sum (x - out)^2 is 2 (out - x)
        delta = backwards(2 * (out - xb), params, 'output', sigmoid_deriv)
        delta = backwards(delta, params, 'layer3', relu_deriv)
        delta = backwards(delta, params, 'layer2', relu_deriv)
        backwards(delta, params, 'layer1', relu_deriv)
        # momentum: M = 0.9 M - lr grad; W = W + M  (params is a Counter: a missing m_ is 0)
        for name in LAYERS:
            for k in ('W' + name, 'b' + name):
                params['m_' + k] = 0.9 * params['m_' + k] - learning_rate * params['grad_' + k]
                params[k] = params[k] + params['m_' + k]

    losses.append(total_loss / train_x.shape[0])
    if itr % 2 == 0:
        print("itr: {:02d} \t loss: {:.2f}".format(itr,total_loss))
    if itr % lr_rate == lr_rate-1:
        learning_rate *= 0.9

# Q5.2: the training loss curve
plt.figure()
plt.plot(range(len(losses)), losses)
plt.xlabel("epoch")
plt.ylabel("average loss")
plt.grid()
plt.savefig("q5_loss.png")
plt.close()

# Q5.3.1: two validation images of each of 5 classes beside their reconstructions
# (valid is sorted by class, the same count per class)
visualize_labels = ["A", "B", "C", "1", "2"]
per_class = valid_x.shape[0] // 36
rng = np.random.RandomState(0)
visualize_x = np.zeros((2 * len(visualize_labels), valid_x.shape[1]))
for i, label in enumerate(visualize_labels):
    idx = 26 + int(label) if label.isnumeric() else string.ascii_uppercase.index(label)
    choices = rng.choice(np.arange(per_class * idx, per_class * (idx + 1)), 2, replace=False)
    visualize_x[2 * i:2 * i + 2] = valid_x[choices]
reconstructed_x = reconstruct(visualize_x)

# one picture: a row per class, each input beside its reconstruction
pairs = np.stack([visualize_x, reconstructed_x], axis=1).reshape(-1, 1024)    # [20, 1024]
tiles = np.ones((len(visualize_labels) * 33, 4 * 33))
for i, row in enumerate(pairs):
    r, c = divmod(i, 4)
    tiles[r * 33:r * 33 + 32, c * 33:c * 33 + 32] = row.reshape(32, 32).T
plt.figure()
plt.imshow(tiles, cmap="gray", vmin=0, vmax=1)
plt.axis("off")
plt.title("validation images (odd columns) and their reconstructions")
plt.savefig("q5_reconstructions.png")
plt.close()


# Q5.3.2
from skimage.metrics import peak_signal_noise_ratio
# evaluate PSNR: the mean over validation images of each image's PSNR (data range 1)
valid_out = reconstruct(valid_x)
psnr = np.mean([peak_signal_noise_ratio(valid_x[i], valid_out[i], data_range=1.0)
                for i in range(valid_x.shape[0])])
print('Validation PSNR: {:.2f}'.format(psnr))
