"""The tag layout: where the unit tag rows live and the products the statistics take of them.

One object owns the (n, t) unit tag vectors of a computation (:attr:`Operands.tags
<corrembed.score.prepare.Operands>`): the host CSR matrix every route reads, plus whatever copy
the backend's products need. :class:`HostTags` (numpy backend) keeps a dense (t, n) transpose
when it is small enough, else multiplies sparse blocks in threads; :class:`DeviceTags` (torch
backend) keeps a dense (n, t) float64 copy on the device. The backend makes the layout
(``backend.tag_layout``); the statistics call its methods, so no backend reaches into the
operands and the operands never switch on the backend's type.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .threads import map_rows

__all__ = ["MAX_DENSE_TAGS_BYTES", "DeviceTags", "HostTags", "sparse_rowdot"]

#: Largest dense (t, n) float64 tag copy kept for tag-similarity blocks (above it, threaded
#: sparse x dense products per block: about as fast, no n x t copy).
MAX_DENSE_TAGS_BYTES = 2**27


def sparse_rowdot(rows: sp.csr_matrix, other) -> np.ndarray:
    """(k,) float64 row-wise dot products of a CSR (k, t) matrix with a dense or CSR (k, t) ``other``,
    over the stored entries only (no dense copy of ``rows``).

    Examples
    --------
    >>> sparse_rowdot(sp.csr_matrix(np.eye(2)), np.array([[2.0, 3.0], [4.0, 5.0]])).tolist()
    [2.0, 5.0]
    """
    return np.asarray(rows.multiply(other).sum(axis=1), dtype=np.float64).ravel()


class HostTags:
    """Unit tag rows on the host (the numpy backend's layout).

    Parameters
    ----------
    csr : (n, t) CSR float64
        Unit rows (zero rows stay zero), indices sorted.
    x_dtype : numpy dtype
        The embeddings' dtype (float32 or float64), for products with embedding-sized arrays.

    Examples
    --------
    >>> tags = HostTags(sp.csr_matrix(np.eye(3)), np.float64)
    >>> tags.block(np.array([0]), 0).tolist()
    [[1.0, 0.0, 0.0]]
    """

    def __init__(self, csr: sp.csr_matrix, x_dtype):
        """See the class docstring."""
        self.csr = csr
        self.x_dtype = np.dtype(x_dtype)

    @property
    def shape(self) -> tuple[int, int]:
        """(n, t)."""
        return self.csr.shape

    @property
    def zero_rows(self) -> np.ndarray:
        """(n,) bool: items whose tag vector is all zero."""
        return np.diff(self.csr.indptr) == 0

    @cached_property
    def dense_t(self) -> np.ndarray | None:
        """(t, n) float64 dense transpose when small enough, else None.

        Tag-similarity blocks are sparse x dense products from it; built on first use, as the
        factored route never needs it.
        """
        n, t = self.csr.shape
        if n * t * 8 > MAX_DENSE_TAGS_BYTES:
            return None
        return np.ascontiguousarray(self.csr.T.toarray())

    @cached_property
    def in_x_dtype(self) -> sp.csr_matrix:
        """The CSR rows in the embeddings' dtype, for sparse products with embedding-sized arrays."""
        return self.csr.astype(self.x_dtype, copy=False)

    def permuted(self, sigma: np.ndarray) -> HostTags:
        """The layout in which item i holds item ``sigma[i]``'s tag vector ((n,) int indices)."""
        return HostTags(self.csr[sigma], self.x_dtype)

    def rowdot(self, rows: np.ndarray, tag_rows: sp.csr_matrix, a) -> np.ndarray:
        """(b,) float64 sum_s tau_{rows[i], s} a[i, s] for a (b, t) array ``a`` (``tag_rows`` =
        the CSR rows ``rows``); host numpy."""
        return sparse_rowdot(tag_rows, a)

    def block(self, rows: np.ndarray, col_start: int):
        """(b, n - col_start) float64 tag cosine similarities of items ``rows`` against col_start..n-1."""
        tag_rows = self.csr[rows]
        if self.dense_t is not None:
            # sparse (b, t) x dense (t, n): ~nnz-per-row axpys of length n per anchor.
            return np.asarray(tag_rows @ self.dense_t[:, col_start:])
        # Too many items for a dense copy of the tags: sparse (m, t) x dense (t, b) over item
        # ranges in threads (10x faster than the sparse x sparse product, whose result is dense
        # anyway), returned as a (b, m) view of the (m, b) result.
        dense_rows_t = tag_rows.T.toarray()
        out = np.empty((self.csr.shape[0] - col_start, dense_rows_t.shape[1]))

        def product(a: int, b: int) -> None:
            """Items col_start + [a, b)."""
            out[a:b] = self.csr[col_start + a : col_start + b] @ dense_rows_t

        map_rows(product, 0, out.shape[0])
        return out.T

    def t_times(self, start: int, stop: int, dense):
        """(t, d) float64: tag rows start..stop transposed times a (stop - start, d) array in the
        embeddings' dtype.

        One sparse product in that dtype (a sum over at most stop - start items; float32 tag
        weights are exact, see :func:`~corrembed.score.prepare.prepare_operands`), as CSR, the
        faster kernel."""
        return np.asarray(self.in_x_dtype[start:stop].T.tocsr() @ dense, dtype=np.float64)

    def permuted_cross_sq_norm(self, x_centred, perm: np.ndarray) -> float:
        """||sum_j (x_j - m) tau_perm[j]^T||_F^2 (float32 product, float64 sum of squares)."""
        cross = np.asarray(self.in_x_dtype[perm].T @ x_centred)
        return float(np.einsum("ij,ij->", cross, cross, dtype=np.float64))


class DeviceTags(HostTags):
    """Unit tag rows on the host and as a dense (n, t) float64 tensor on a torch device.

    Parameters
    ----------
    csr : (n, t) CSR float64
        Unit rows, as :class:`HostTags`.
    x_dtype : numpy dtype
        The embeddings' dtype.
    backend : TorchBackend
        The backend whose device holds the copy (its ``put``, ``index``, ``get``).
    dense : torch tensor, optional
        The (n, t) float64 device copy; scattered from ``csr``'s non-zeros when None.
    """

    def __init__(self, csr: sp.csr_matrix, x_dtype, backend, dense=None):
        """See the class docstring."""
        super().__init__(csr, x_dtype)
        self.backend = backend
        self.dense = dense if dense is not None else self._scatter()

    def _scatter(self):
        """(n, t) float64 dense tag matrix on the device, scattered from the CSR non-zeros."""
        be, torch = self.backend, self.backend.torch
        coo = self.csr.tocoo()
        dense = torch.zeros(self.csr.shape, dtype=torch.float64, device=be.device)
        dense[be.index(coo.row), be.index(coo.col)] = be.put(coo.data)
        return dense

    @property
    def dense_t(self) -> None:
        """No host dense copy: blocks are device products."""
        return None

    def permuted(self, sigma: np.ndarray) -> DeviceTags:
        """The layout in which item i holds item ``sigma[i]``'s tag vector."""
        return DeviceTags(self.csr[sigma], self.x_dtype, self.backend, self.dense[self.backend.index(sigma)])

    def rowdot(self, rows: np.ndarray, tag_rows: sp.csr_matrix, a) -> np.ndarray:
        """(b,) float64 sum_s tau_{rows[i], s} a[i, s] for a (b, t) tensor ``a``, on the host."""
        be = self.backend
        return be.get((a.to(be.torch.float64) * self.dense[be.index(rows)]).sum(dim=1))

    def block(self, rows: np.ndarray, col_start: int):
        """(b, n - col_start) float64 tag cosine similarities (dense device product)."""
        return self.dense[self.backend.index(rows)] @ self.dense[col_start:].T

    def t_times(self, start: int, stop: int, dense):
        """(t, d) float64: tag rows start..stop transposed times a (stop - start, d) tensor."""
        return self.dense[start:stop].T @ dense.to(self.backend.torch.float64)

    def permuted_cross_sq_norm(self, x_centred, perm: np.ndarray) -> float:
        """||sum_j (x_j - m) tau_perm[j]^T||_F^2 (product in x's dtype, float64 sum of squares)."""
        tags = self.dense[self.backend.index(perm)].to(x_centred.dtype)
        cross = tags.T @ x_centred
        return float(cross.to(self.backend.torch.float64).square().sum())
