# Reference values for tests/train/optimizer_test.cpp: torch.optim.AdamW on fixed params/grads.
import torch
torch.set_default_dtype(torch.float32)
p = torch.tensor([0.5, -1.25, 2.0, 0.0, -0.75, 3.5], requires_grad=True)
q = torch.tensor([[1.0, -2.0], [0.25, 0.125]], requires_grad=True)
opt = torch.optim.AdamW([p, q], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
for t in range(1, 6):
    opt.zero_grad()
    # gradients of a fixed function that changes with the step: g = sin(k*t + p) etc.
    k = torch.arange(6, dtype=torch.float32)
    p.grad = torch.sin(0.7 * k * t) * 0.5 + p.detach() * 0.1
    q.grad = torch.cos(torch.arange(4, dtype=torch.float32).reshape(2, 2) * t) - q.detach() * 0.2
    opt.step()
    print("step", t)
    print("p", ", ".join("%.9ef" % x for x in p.detach().tolist()))
    print("q", ", ".join("%.9ef" % x for x in q.detach().flatten().tolist()))
print(torch.__version__)
