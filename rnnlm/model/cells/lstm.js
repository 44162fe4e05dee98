/* The LSTM's step in the exported page (lstm.py holds the equations), rows i, f, g, o:
   c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g), h' = σ(o) ⊙ tanh(c').  cellStep's arguments: see rnn.js; rest = [c]. */
function cellStep(F, gx, gh, h, rest, b, bih, bhh, H) {
  const c = rest[0];
  for (let i = 0, f = H, g = 2 * H, o = 3 * H; i < H; i++, f++, g++, o++) {
    c[i] = sigmoid(F[gx + f] + F[gh + f] + b[f]) * c[i] + sigmoid(F[gx + i] + F[gh + i] + b[i]) * Math.tanh(F[gx + g] + F[gh + g] + b[g]);
    F[h + i] = sigmoid(F[gx + o] + F[gh + o] + b[o]) * Math.tanh(c[i]);
  }
}
