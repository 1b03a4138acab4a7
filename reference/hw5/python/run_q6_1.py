import numpy as np
import scipy.io
import torch
import torch.nn as nn

# Reference solution of Q6.1.1: the Q3 network (1024-64-36, sigmoid hidden layer) in PyTorch,
# trained on NIST36 with minibatch SGD; reports training curves and the test accuracy.
import matplotlib
matplotlib.use("Agg")          # figures are written to files, never shown: the script never blocks
import matplotlib.pyplot as plt

torch.manual_seed(0)
np.random.seed(0)

train_data = scipy.io.loadmat('../data/nist36_train.mat')
valid_data = scipy.io.loadmat('../data/nist36_valid.mat')
test_data = scipy.io.loadmat('../data/nist36_test.mat')


def tensors(data, split):
    """(x [N, 1024] float32, class indices [N] int64) of one split."""
    x = torch.from_numpy(data[split + '_data']).float()
    y = torch.from_numpy(np.argmax(data[split + '_labels'], axis=1)).long()
    return x, y


train_x, train_y = tensors(train_data, 'train')
valid_x, valid_y = tensors(valid_data, 'valid')
test_x, test_y = tensors(test_data, 'test')

max_iters = 50
batch_size = 32
learning_rate = 0.1
hidden_size = 64

model = nn.Sequential(
    nn.Linear(1024, hidden_size),   # [B, 1024] -> [B, 64]
    nn.Sigmoid(),
    nn.Linear(hidden_size, 36),     # [B, 64] -> [B, 36] logits; softmax is inside the loss
)
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()


def accuracy(x, y):
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


train_loss, train_acc, valid_acc = [], [], []
for itr in range(max_iters):
    order = torch.randperm(train_x.shape[0])
    total_loss = 0.0
    for start in range(0, train_x.shape[0], batch_size):
        idx = order[start:start + batch_size]
        loss = loss_fn(model(train_x[idx]), train_y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * idx.shape[0]
    train_loss.append(total_loss / train_x.shape[0])
    train_acc.append(accuracy(train_x, train_y))
    valid_acc.append(accuracy(valid_x, valid_y))
    if itr % 5 == 0:
        print("itr: {:02d} \t loss: {:.3f} \t acc : {:.2f} \t valid acc : {:.2f}".format(
            itr, train_loss[-1], train_acc[-1], valid_acc[-1]))

test_acc = accuracy(test_x, test_y)
print('Test accuracy: ', test_acc)

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].plot(train_loss)
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("average loss")
axes[1].plot(train_acc, label="training")
axes[1].plot(valid_acc, label="validation")
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("accuracy")
axes[1].legend()
fig.savefig("q6_1_curves.png")
plt.close(fig)
