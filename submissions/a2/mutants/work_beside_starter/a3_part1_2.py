# CSC321 A3, parts 1 and 2: sampling at a temperature, and completing a string.
import numpy as np

a = np.load(open("char-rnn-snapshot.npz"))
Wxh = a["Wxh"]
Whh = a["Whh"]
Why = a["Why"]
bh = a["bh"]
by = a["by"]
chars, data_size, vocab_size, char_to_ix, ix_to_char = a["chars"].tolist(), a["data_size"].tolist(), a["vocab_size"].tolist(), a["char_to_ix"].tolist(), a["ix_to_char"].tolist()
hidden_size = Whh.shape[0]


def sample_temperature(h, seed_ix, n, temperature=1.0):
  """Sample n characters; a higher temperature gives a flatter distribution."""
  x = np.zeros((vocab_size, 1))
  x[seed_ix] = 1
  ixes = []
  for t in xrange(n):
    h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
    y = np.dot(Why, h) + by
    p = np.exp(y / temperature) / np.sum(np.exp(y / temperature))
    ix = np.random.choice(range(vocab_size), p=p.ravel())
    x = np.zeros((vocab_size, 1))
    x[ix] = 1
    ixes.append(ix)
  return ixes


def complete_string(start, n):
  """The n characters that follow the string `start`."""
  h = np.zeros((hidden_size, 1))
  for ch in start[:-1]:
    x = np.zeros((vocab_size, 1))
    x[char_to_ix[ch]] = 1
    h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
  ixes = sample_temperature(h, char_to_ix[start[-1]], n)
  return start + ''.join(ix_to_char[ix] for ix in ixes)


for temperature in [0.5, 1.0, 2.0]:
  print '---- temperature %.1f' % temperature
  print ''.join(ix_to_char[ix] for ix in sample_temperature(np.zeros((hidden_size, 1)), char_to_ix['T'], 200, temperature))
print complete_string("Hello, my lord", 100)
